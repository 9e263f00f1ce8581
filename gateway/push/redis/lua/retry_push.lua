-- ARGV: P, id, now, the statuses it may come from... → 1 when the push is pending again
local id = ARGV[2]
local f = redis.call('HMGET', PK(id), 'shop', 'oid', 'status')
if not f[3] or not in_argv(f[3], 4) then return 0 end
redis.call('HSET', PK(id), 'due', ARGV[3], 'created', ARGV[3], 'attempts', '0', 'lease', '0')
set_status(id, f[3], 'pending')
local old = head_of(f[1], f[2])
redis.call('ZADD', OQ(f[1], f[2]), id, id)
refresh_head(f[1], f[2], old)
return 1
