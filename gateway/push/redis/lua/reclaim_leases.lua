-- ARGV: P, owner, heartbeat entry → {kind, earlier owner, count, ...}
-- At a replica's start: what earlier starts of the same replica id still hold becomes claimable again at once (they
-- are dead: this replica id is starting again). Members of the held set that another owner holds now, or that were
-- settled or purged, leave the set.
local owner = ARGV[2]
local rid, held = RID(owner), HELD(owner)
redis.call('HSET', P .. ':replicas', rid, ARGV[3])
local counts = {}
local function earlier(own) return own and own ~= '' and own ~= owner and RID(own) == rid end
for _, m in ipairs(redis.call('SMEMBERS', held)) do
  local kind, id = string.sub(m, 1, 1), string.sub(m, 3)
  local own = false
  if kind == 'e' then
    local k = P .. ':ev:' .. id
    local f = redis.call('HMGET', k, 'own', 'status')
    if earlier(f[1]) and f[2] == 'pending' then
      own = f[1]
      redis.call('HSET', k, 'own', '')
      redis.call('ZREM', P .. ':ev:leased', id)
      redis.call('ZADD', P .. ':ev:ready', id, id)
    end
  elseif kind == 'p' then
    local f = redis.call('HMGET', PK(id), 'own', 'status', 'shop', 'oid')
    if earlier(f[1]) and f[2] == 'pending' then
      own = f[1]
      redis.call('HSET', PK(id), 'own', '', 'lease', '0')
      refresh_head(f[3], f[4], nil)
    end
  else
    local k = check_key(id)
    local f = redis.call('HMGET', k, 'own', 'done', 'due')
    if earlier(f[1]) and f[2] == '0' then
      own = f[1]
      redis.call('HSET', k, 'own', '', 'lease', '0')
      redis.call('ZADD', P .. ':checks', f[3], id)
    end
  end
  if own then
    local key = kind .. '\n' .. own
    counts[key] = (counts[key] or 0) + 1
  end
  redis.call('SREM', held, m)
end
local out = {}
for key, n in pairs(counts) do
  local nl = string.find(key, '\n', 1, true)
  out[#out + 1] = string.sub(key, 1, nl - 1)
  out[#out + 1] = string.sub(key, nl + 1)
  out[#out + 1] = n
end
return out
