-- ARGV: P, id → 1 when dropped
local id = ARGV[2]
local f = redis.call('HMGET', PK(id), 'shop', 'oid', 'status')
if f[3] ~= 'pending' and f[3] ~= 'dead' then return 0 end
redis.call('HSET', PK(id), 'lease', '0')
set_status(id, f[3], 'dropped')
if f[3] == 'pending' then leave_queue(id, f[1], f[2]) end
return 1
