-- ARGV: P, shop, oid, name, updated, financial status, cancelled, cid, receipt decided (0/1)
local shop, oid = ARGV[2], ARGV[3]
local k = S(shop) .. ':ord:' .. oid
local cur = redis.call('HMGET', k, 'updated', 'cid')
if cur[1] and tonumber(cur[1]) > tonumber(ARGV[5]) then return 0 end
if cur[2] and cur[2] ~= '' and cur[2] ~= ARGV[8] then redis.call('SREM', S(shop) .. ':c:' .. cur[2] .. ':o', oid) end
redis.call('HSET', k, 'name', ARGV[4], 'updated', ARGV[5], 'fin', ARGV[6], 'cancelled', ARGV[7], 'cid', ARGV[8],
  'decided', ARGV[9])
-- fields of rows written before: the receipt decision as a "receipt:" prefix, and shopper data no longer kept
redis.call('HDEL', k, 'receipt', 'recipient', 'rname')
remember_customer(shop, ARGV[8], oid)
return 1
