-- ARGV: P, seq, error, oid, cid
local seq = ARGV[2]
local k = P .. ':ev:' .. seq
local shop = redis.call('HGET', k, 'shop')
redis.call('ZREM', P .. ':ev:ready', seq)
redis.call('ZREM', P .. ':ev:leased', seq)
if not shop then return 0 end  -- purged meanwhile (shop/redact purges its own event too)
unhold('e:' .. seq, redis.call('HGET', k, 'own'))
redis.call('HSET', k, 'status', ARGV[3] ~= '' and 'dead' or 'done', 'error', ARGV[3], 'own', '')
if ARGV[4] ~= '' then
  redis.call('HSET', k, 'oid', ARGV[4])
  redis.call('ZADD', S(shop) .. ':o:' .. ARGV[4] .. ':ev', seq, seq)
  remember_customer(shop, ARGV[5], ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', k, 'cid', ARGV[5])
  if ARGV[4] == '' then redis.call('SADD', S(shop) .. ':c:' .. ARGV[5] .. ':ev', seq) end
end
return 1
