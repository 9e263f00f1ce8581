-- ARGV: P, lease expiry, owner, heartbeat ("" or the P:replicas entry to write), members...
--   → {the members another owner holds now (taken after `owner`'s lease expired), those nobody holds any more
--      (settled or purged meanwhile), the replica id's entry this heartbeat replaced when another start wrote it
--      (two live processes share the replica id) or ''}
local expiry, owner = ARGV[2], ARGV[3]
local other = ''
if ARGV[4] ~= '' then
  local before = redis.call('HGET', P .. ':replicas', RID(owner))
  local function nonce(entry) return string.match(entry, '^[^\t]*') end  -- entries are "nonce\tstarted\tbeat"
  if before and nonce(before) ~= nonce(ARGV[4]) then other = before end
  redis.call('HSET', P .. ':replicas', RID(owner), ARGV[4])
end
local taken, gone = {}, {}
for i = 5, #ARGV do
  local m = ARGV[i]
  local kind, id = string.sub(m, 1, 1), string.sub(m, 3)
  local held, f = false, nil
  if kind == 'e' then
    f = redis.call('HMGET', P .. ':ev:' .. id, 'own', 'status')
    if f[1] == owner and f[2] == 'pending' then
      held = true
      redis.call('ZREM', P .. ':ev:ready', id)  -- expired, moved back by a claim, but nobody took it: still ours
      redis.call('ZADD', P .. ':ev:leased', expiry, id)
    end
  elseif kind == 'p' then
    f = redis.call('HMGET', PK(id), 'own', 'status', 'shop', 'oid')
    if f[1] == owner and f[2] == 'pending' then
      held = true
      redis.call('HSET', PK(id), 'lease', expiry)
      refresh_head(f[3], f[4], nil)
    end
  else
    f = redis.call('HMGET', check_key(id), 'own', 'done')
    if f[1] == owner and f[2] == '0' then
      held = true
      redis.call('ZADD', P .. ':checks', expiry, id)
    end
  end
  if held then
  elseif f[1] and f[1] ~= '' and f[1] ~= owner then taken[#taken + 1] = m
  else gone[#gone + 1] = m end
end
return {taken, gone, other}
