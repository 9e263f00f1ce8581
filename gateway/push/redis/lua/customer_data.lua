-- ARGV: P, shop, cid ('' when none), '1' to delete or '0' to count, order ids...
--   → {events, orders, fulfillments, pushes, tracking numbers, unpaid checks}
local shop, cid, del = ARGV[2], ARGV[3], ARGV[4] == '1'
local base = S(shop)
local n = {0, 0, 0, 0, 0, 0}
local function drop_event(seq)
  local k = P .. ':ev:' .. seq
  local f = redis.call('HMGET', k, 'shop', 'eid')
  if not f[1] then return end
  n[1] = n[1] + 1
  if del then
    redis.call('HDEL', P .. ':evid:' .. f[2], f[1])
    redis.call('DEL', k)
    redis.call('ZREM', P .. ':ev:ready', seq)
    redis.call('ZREM', P .. ':ev:leased', seq)
    redis.call('ZREM', base .. ':ev', seq)
  end
end
local ids = {}
for i = 5, #ARGV do ids[ARGV[i]] = true end
if cid ~= '' then
  for _, oid in ipairs(redis.call('SMEMBERS', base .. ':c:' .. cid .. ':o')) do ids[oid] = true end
end
for oid, _ in pairs(ids) do
  local ob = base .. ':o:' .. oid
  for _, seq in ipairs(redis.call('ZRANGE', ob .. ':ev', 0, -1)) do drop_event(seq) end
  if redis.call('EXISTS', base .. ':ord:' .. oid) == 1 then
    n[2] = n[2] + 1
    if del then redis.call('DEL', base .. ':ord:' .. oid) end
  end
  for _, fid in ipairs(redis.call('SMEMBERS', ob .. ':ful')) do
    if redis.call('HGET', base .. ':ful:' .. fid, 'oid') == oid then
      n[3] = n[3] + 1
      if del then redis.call('DEL', base .. ':ful:' .. fid) end
    end
  end
  for _, id in ipairs(redis.call('ZRANGE', ob .. ':push', 0, -1)) do
    local f = redis.call('HMGET', PK(id), 'dkey', 'status')
    if f[1] then
      n[4] = n[4] + 1
      if del then
        redis.call('HDEL', base .. ':pk', f[1])
        redis.call('ZREM', P .. ':pst:' .. f[2], id)
        redis.call('ZREM', P .. ':due', id)
        redis.call('ZREM', base .. ':push', id)
        redis.call('DEL', PK(id), PK(id) .. ':att')
      end
    end
  end
  for _, tn in ipairs(redis.call('SMEMBERS', ob .. ':trk')) do
    if redis.call('HGET', base .. ':trk:' .. tn, 'oid') == oid then
      n[5] = n[5] + 1
      if del then redis.call('DEL', base .. ':trk:' .. tn) end
    end
  end
  if redis.call('EXISTS', base .. ':chk:' .. oid) == 1 then
    n[6] = n[6] + 1
    if del then
      redis.call('DEL', base .. ':chk:' .. oid)
      redis.call('ZREM', P .. ':checks', shop .. '\n' .. oid)
    end
  end
  if del then
    redis.call('DEL', ob .. ':ev', ob .. ':ful', ob .. ':push', ob .. ':q', ob .. ':trk')
  end
end
if cid ~= '' then
  for _, seq in ipairs(redis.call('SMEMBERS', base .. ':c:' .. cid .. ':ev')) do drop_event(seq) end
  if del then redis.call('DEL', base .. ':c:' .. cid .. ':ev', base .. ':c:' .. cid .. ':o') end
end
return n
