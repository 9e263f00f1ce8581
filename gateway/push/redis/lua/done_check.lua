-- ARGV: P, shop, oid
local k = S(ARGV[2]) .. ':chk:' .. ARGV[3]
if redis.call('EXISTS', k) == 0 then return 0 end
unhold('c:' .. ARGV[2] .. '\n' .. ARGV[3], redis.call('HGET', k, 'own'))
redis.call('HSET', k, 'done', '1', 'lease', '0', 'own', '')
redis.call('ZREM', P .. ':checks', ARGV[2] .. '\n' .. ARGV[3])
return 1
