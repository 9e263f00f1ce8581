-- ARGV: P, now, lease expiry, limit → {{id, fields...}, ...}
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':due', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local f = redis.call('HMGET', PK(id), $PUSH_FIELDS)
  if f[7] == 'pending' then
    redis.call('HSET', PK(id), 'lease', ARGV[3])
    redis.call('ZADD', P .. ':due', ARGV[3], id)
    table.insert(f, 1, id)
    out[#out + 1] = f
  else
    redis.call('ZREM', P .. ':due', id)  -- purged or finished meanwhile
  end
end
return out
