-- ARGV: P, now, lease expiry, limit, owner → {{{id, fields...}, ...}, {taken from, count, ...}}
local out, taken, owner = {}, {}, ARGV[5]
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. ':due', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local f = redis.call('HMGET', PK(id), $PUSH_FIELDS)
  if f[7] == 'pending' then
    take(taken, 'p:' .. id, owner, redis.call('HGET', PK(id), 'own'))
    redis.call('HSET', PK(id), 'lease', ARGV[3], 'own', owner, 'lsince', ARGV[2])
    redis.call('ZADD', P .. ':due', ARGV[3], id)
    table.insert(f, 1, id)
    out[#out + 1] = f
  else
    redis.call('ZREM', P .. ':due', id)  -- purged or finished meanwhile
  end
end
return {out, flat(taken)}
