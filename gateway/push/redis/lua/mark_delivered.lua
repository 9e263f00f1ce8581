-- ARGV: P, id, now, owner → 1 when recorded, 0 when `owner` does not hold the push (fenced: nothing written)
local id = ARGV[2]
local f = redis.call('HMGET', PK(id), 'shop', 'oid', 'status', 'own')
if not f[1] or f[4] ~= ARGV[4] then return 0 end
redis.call('HSET', PK(id), 'delivered', ARGV[3], 'lease', '0', 'err', '', 'own', '')
unhold('p:' .. id, f[4])
redis.call('HINCRBY', PK(id), 'attempts', 1)
set_status(id, f[3], 'delivered')
if f[3] == 'pending' then leave_queue(id, f[1], f[2]) end
return 1
