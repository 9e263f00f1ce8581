-- ARGV: P, now, lease expiry, limit, owner → {{{seq, fields...}, ...}, {taken from, count, ...}}
local ready, leased, owner = P .. ':ev:ready', P .. ':ev:leased', ARGV[5]
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', ARGV[2])) do
  redis.call('ZREM', leased, seq)
  redis.call('ZADD', ready, seq, seq)
end
local out, taken = {}, {}
for _, seq in ipairs(redis.call('ZRANGE', ready, 0, tonumber(ARGV[4]) - 1)) do
  redis.call('ZREM', ready, seq)
  local k = P .. ':ev:' .. seq
  local f = redis.call('HMGET', k, $EVENT_FIELDS)
  if f[1] then
    take(taken, 'e:' .. seq, owner, redis.call('HGET', k, 'own'))
    redis.call('HSET', k, 'own', owner, 'lsince', ARGV[2])
    redis.call('ZADD', leased, ARGV[3], seq)
    table.insert(f, 1, seq)
    out[#out + 1] = f
  end
end
return {out, flat(taken)}
