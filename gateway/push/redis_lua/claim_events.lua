-- ARGV: P, now, lease expiry, limit → {{seq, fields...}, ...}
local ready, leased = P .. ':ev:ready', P .. ':ev:leased'
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', ARGV[2])) do
  redis.call('ZREM', leased, seq)
  redis.call('ZADD', ready, seq, seq)
end
local out = {}
for _, seq in ipairs(redis.call('ZRANGE', ready, 0, tonumber(ARGV[4]) - 1)) do
  redis.call('ZREM', ready, seq)
  local f = redis.call('HMGET', P .. ':ev:' .. seq, $EVENT_FIELDS)
  if f[1] then
    redis.call('ZADD', leased, ARGV[3], seq)
    table.insert(f, 1, seq)
    out[#out + 1] = f
  end
end
return out
