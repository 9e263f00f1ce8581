-- ARGV: P, shop, event id, topic, webhook id, triggered at, api version, body, now → seq, or 0 for a duplicate.
local idx = P .. ':evid:' .. ARGV[3]
if redis.call('HEXISTS', idx, ARGV[2]) == 1 then return 0 end
local seq = redis.call('INCR', P .. ':seq:ev')
redis.call('HSET', idx, ARGV[2], seq)
redis.call('HSET', P .. ':ev:' .. seq, 'shop', ARGV[2], 'eid', ARGV[3], 'topic', ARGV[4], 'wid', ARGV[5],
  'trig', ARGV[6], 'apiv', ARGV[7], 'body', ARGV[8], 'recv', ARGV[9], 'status', 'pending', 'error', '')
redis.call('ZADD', P .. ':ev:ready', seq, seq)
redis.call('ZADD', S(ARGV[2]) .. ':ev', seq, seq)
return seq
