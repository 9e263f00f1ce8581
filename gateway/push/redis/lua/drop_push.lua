-- ARGV: P, id, the statuses it may come from... → 1 when dropped
local id = ARGV[2]
local f = redis.call('HMGET', PK(id), 'shop', 'oid', 'status')
if not f[3] or not in_argv(f[3], 3) then return 0 end
redis.call('HSET', PK(id), 'lease', '0')
set_status(id, f[3], 'dropped')
if f[3] == 'pending' then leave_queue(id, f[1], f[2]) end
return 1
