-- ARGV: P, now, lease expiry, limit, owner → {{{shop, oid, due, cid}, ...}, {taken from, count, ...}}
local out, taken, owner = {}, {}, ARGV[5]
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. ':checks', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local nl = string.find(m, '\n', 1, true)
  local shop, oid = string.sub(m, 1, nl - 1), string.sub(m, nl + 1)
  local k = S(shop) .. ':chk:' .. oid
  local f = redis.call('HMGET', k, 'due', 'cid', 'done', 'own')
  if f[1] and f[3] == '0' then
    take(taken, 'c:' .. m, owner, f[4])
    redis.call('HSET', k, 'lease', ARGV[3], 'own', owner, 'lsince', ARGV[2])
    redis.call('ZADD', P .. ':checks', ARGV[3], m)
    out[#out + 1] = {shop, oid, f[1], f[2]}
  else
    redis.call('ZREM', P .. ':checks', m)
  end
end
return {out, flat(taken)}
