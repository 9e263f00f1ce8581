-- ARGV: P, now, lease expiry, limit → {{shop, oid, due, cid}, ...}
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. ':checks', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local nl = string.find(m, '\n', 1, true)
  local shop, oid = string.sub(m, 1, nl - 1), string.sub(m, nl + 1)
  local k = S(shop) .. ':chk:' .. oid
  local f = redis.call('HMGET', k, 'due', 'cid', 'done')
  if f[1] and f[3] == '0' then
    redis.call('HSET', k, 'lease', ARGV[3])
    redis.call('ZADD', P .. ':checks', ARGV[3], m)
    out[#out + 1] = {shop, oid, f[1], f[2]}
  else
    redis.call('ZREM', P .. ':checks', m)
  end
end
return out
