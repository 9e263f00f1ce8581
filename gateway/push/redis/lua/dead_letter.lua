-- ARGV: P, id, reason, owner → 1 when dead-lettered, 0 when `owner` does not hold the push (fenced)
local id = ARGV[2]
local f = redis.call('HMGET', PK(id), 'shop', 'oid', 'status', 'own')
if not f[1] or f[4] ~= ARGV[4] then return 0 end
redis.call('HSET', PK(id), 'err', ARGV[3], 'lease', '0', 'own', '')
unhold('p:' .. id, f[4])
redis.call('HINCRBY', PK(id), 'attempts', 1)
set_status(id, f[3], 'dead')
if f[3] == 'pending' then leave_queue(id, f[1], f[2]) end
return 1
