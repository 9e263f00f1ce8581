-- ARGV: P, id, due, error
local id = ARGV[2]
local f = redis.call('HMGET', PK(id), 'shop', 'oid', 'status')
if f[3] ~= 'pending' then return 0 end
redis.call('HSET', PK(id), 'due', ARGV[3], 'err', ARGV[4], 'lease', '0')
redis.call('HINCRBY', PK(id), 'attempts', 1)
refresh_head(f[1], f[2], nil)
return 1
