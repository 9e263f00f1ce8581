-- ARGV: P, shop, oid, due, cid → 1 when scheduled now (once per order, even after it was done)
local shop, oid = ARGV[2], ARGV[3]
local k = S(shop) .. ':chk:' .. oid
if redis.call('EXISTS', k) == 1 then return 0 end
redis.call('HSET', k, 'due', ARGV[4], 'lease', '0', 'done', '0', 'cid', ARGV[5])
redis.call('ZADD', P .. ':checks', ARGV[4], shop .. '\n' .. oid)
remember_customer(shop, ARGV[5], oid)
return 1
