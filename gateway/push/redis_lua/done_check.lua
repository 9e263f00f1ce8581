-- ARGV: P, shop, oid
local k = S(ARGV[2]) .. ':chk:' .. ARGV[3]
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('HSET', k, 'done', '1', 'lease', '0')
redis.call('ZREM', P .. ':checks', ARGV[2] .. '\n' .. ARGV[3])
return 1
