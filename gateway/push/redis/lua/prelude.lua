-- Shared by every script (prepended to each): ARGV[1] is always the key prefix.
local P = ARGV[1]
local function S(shop) return P .. ':s:' .. shop end
local function PK(id) return P .. ':push:' .. id end
local function OQ(shop, oid) return S(shop) .. ':o:' .. oid .. ':q' end
local function head_of(shop, oid) return redis.call('ZRANGE', OQ(shop, oid), 0, 0)[1] end
-- Put the order's current head in P:due (scored by when it can next be claimed); drop the old head if it changed.
local function refresh_head(shop, oid, old_head)
  local head = head_of(shop, oid)
  if old_head and old_head ~= head then redis.call('ZREM', P .. ':due', old_head) end
  if head then
    local t = redis.call('HMGET', PK(head), 'due', 'lease')
    redis.call('ZADD', P .. ':due', math.max(tonumber(t[1]), tonumber(t[2])), head)
  end
end
local function set_status(id, old, new)
  if old then redis.call('ZREM', P .. ':pst:' .. old, id) end
  redis.call('ZADD', P .. ':pst:' .. new, id, id)
  redis.call('HSET', PK(id), 'status', new)
end
-- Leave the order's pending queue (delivered, dead, dropped), letting the next push of the order through.
local function leave_queue(id, shop, oid)
  local old = head_of(shop, oid)
  redis.call('ZREM', OQ(shop, oid), id)
  redis.call('ZREM', P .. ':due', id)
  refresh_head(shop, oid, old)
end
local function remember_customer(shop, cid, oid)
  if cid and cid ~= '' and oid and oid ~= '' then redis.call('SADD', S(shop) .. ':c:' .. cid .. ':o', oid) end
end
-- Whether `value` is one of ARGV[from], ARGV[from + 1], ... (a transition's accepted statuses, passed by the caller).
local function in_argv(value, from)
  for i = from, #ARGV do
    if ARGV[i] == value then return true end
  end
  return false
end
-- Leases (docs/replicas.md): a leased row's 'own' field is its holder's token "<replica id>/<nonce>", and the row is a
-- member of its holder's set P:held:<replica id> ("e:<seq>", "p:<id>", "c:<shop>\n<oid>"), where a restarted replica
-- finds what its earlier start held. Settling a row clears 'own' and leaves the set.
local function RID(owner) return string.match(owner, '^(.*)/[^/]*$') or owner end
local function HELD(owner) return P .. ':held:' .. RID(owner) end
-- `owner` takes the row `member` (its 'own' was `old`); an expired lease of another owner counts as taken from it.
local function take(taken, member, owner, old)
  if old and old ~= '' and old ~= owner then
    redis.call('SREM', HELD(old), member)
    taken[old] = (taken[old] or 0) + 1
  end
  redis.call('SADD', HELD(owner), member)
end
local function unhold(member, owner)
  if owner and owner ~= '' then redis.call('SREM', HELD(owner), member) end
end
-- {owner, count, owner, count, ...}: what a claim took, returned after its rows.
local function flat(taken)
  local out = {}
  for owner, n in pairs(taken) do out[#out + 1] = owner; out[#out + 1] = n end
  return out
end
local function check_key(member)
  local nl = string.find(member, '\n', 1, true)
  return S(string.sub(member, 1, nl - 1)) .. ':chk:' .. string.sub(member, nl + 1)
end
