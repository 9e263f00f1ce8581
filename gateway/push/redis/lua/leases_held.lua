-- ARGV: P → {{replica id, heartbeat entry, events, pushes, checks, oldest lease since}, ...}: what each replica that
-- has used the store holds now (rows it still owns, under any of its starts)
local out = {}
local entries = redis.call('HGETALL', P .. ':replicas')
for i = 1, #entries, 2 do
  local rid = entries[i]
  local n = {e = 0, p = 0, c = 0}
  local oldest = ''
  for _, m in ipairs(redis.call('SMEMBERS', P .. ':held:' .. rid)) do
    local kind, id = string.sub(m, 1, 1), string.sub(m, 3)
    local k
    if kind == 'e' then k = P .. ':ev:' .. id elseif kind == 'p' then k = PK(id) else k = check_key(id) end
    local f = redis.call('HMGET', k, 'own', 'lsince')
    if f[1] and f[1] ~= '' and RID(f[1]) == rid then
      n[kind] = n[kind] + 1
      if f[2] and (oldest == '' or tonumber(f[2]) < tonumber(oldest)) then oldest = f[2] end
    end
  end
  out[#out + 1] = {rid, entries[i + 1], n.e, n.p, n.c, oldest}
end
return out
