-- ARGV: P, shop, dedupe key, idempotency key, oid, topic, body, status, now, due, reason, fid, cid
--   → 1 when a new pending push was enqueued
local shop, oid, status = ARGV[2], ARGV[5], ARGV[8]
if redis.call('HEXISTS', S(shop) .. ':pk', ARGV[3]) == 1 then return 0 end
local id = tostring(redis.call('INCR', P .. ':seq:push'))
redis.call('HSET', S(shop) .. ':pk', ARGV[3], id)
redis.call('HSET', PK(id), 'shop', shop, 'dkey', ARGV[3], 'ikey', ARGV[4], 'oid', oid, 'topic', ARGV[6],
  'body', ARGV[7], 'status', status, 'created', ARGV[9], 'due', ARGV[10], 'lease', '0', 'attempts', '0',
  'err', ARGV[11], 'delivered', '', 'fid', ARGV[12], 'cid', ARGV[13])
redis.call('ZADD', S(shop) .. ':push', id, id)
redis.call('ZADD', S(shop) .. ':o:' .. oid .. ':push', id, id)
redis.call('ZADD', P .. ':pst:' .. status, id, id)
remember_customer(shop, ARGV[13], oid)
if status ~= 'pending' then return 0 end
local old = head_of(shop, oid)
redis.call('ZADD', OQ(shop, oid), id, id)
refresh_head(shop, oid, old)
return 1
