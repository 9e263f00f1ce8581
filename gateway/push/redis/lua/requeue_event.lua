-- ARGV: P, seq → 1 when requeued
local k = P .. ':ev:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('HSET', k, 'status', 'pending', 'error', '')
redis.call('ZREM', P .. ':ev:leased', ARGV[2])
redis.call('ZADD', P .. ':ev:ready', ARGV[2], ARGV[2])
return 1
