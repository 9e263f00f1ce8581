-- ARGV: P, shop, tracking number, oid, order name, cid
local shop, tn, oid = ARGV[2], ARGV[3], ARGV[4]
local k = S(shop) .. ':trk:' .. tn
local old = redis.call('HGET', k, 'oid')
if old and old ~= oid then redis.call('SREM', S(shop) .. ':o:' .. old .. ':trk', tn) end
redis.call('HSET', k, 'oid', oid, 'name', ARGV[5], 'cid', ARGV[6])
redis.call('SADD', S(shop) .. ':o:' .. oid .. ':trk', tn)
remember_customer(shop, ARGV[6], oid)
return 1
