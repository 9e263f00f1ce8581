-- ARGV: P, id, reason
local id = ARGV[2]
local f = redis.call('HMGET', PK(id), 'shop', 'oid', 'status')
if not f[1] then return 0 end
redis.call('HSET', PK(id), 'err', ARGV[3], 'lease', '0')
redis.call('HINCRBY', PK(id), 'attempts', 1)
set_status(id, f[3], 'dead')
if f[3] == 'pending' then leave_queue(id, f[1], f[2]) end
return 1
