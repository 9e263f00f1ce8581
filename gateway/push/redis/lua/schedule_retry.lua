-- ARGV: P, id, due, error, owner → 1 when scheduled, 0 when not pending or not held by `owner` (fenced)
local id = ARGV[2]
local f = redis.call('HMGET', PK(id), 'shop', 'oid', 'status', 'own')
if f[3] ~= 'pending' or f[4] ~= ARGV[5] then return 0 end
redis.call('HSET', PK(id), 'due', ARGV[3], 'err', ARGV[4], 'lease', '0', 'own', '')
unhold('p:' .. id, f[4])
redis.call('HINCRBY', PK(id), 'attempts', 1)
refresh_head(f[1], f[2], nil)
return 1
