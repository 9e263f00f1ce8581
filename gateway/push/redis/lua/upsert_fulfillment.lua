-- ARGV: P, shop, fid, oid, updated, status, name, tracking number, tracking url
local shop, fid, oid = ARGV[2], ARGV[3], ARGV[4]
local k = S(shop) .. ':ful:' .. fid
local cur = redis.call('HMGET', k, 'updated', 'oid')
if cur[1] and tonumber(cur[1]) > tonumber(ARGV[5]) then return 0 end
if cur[2] and cur[2] ~= oid then redis.call('SREM', S(shop) .. ':o:' .. cur[2] .. ':ful', fid) end
redis.call('HSET', k, 'oid', oid, 'updated', ARGV[5], 'status', ARGV[6], 'name', ARGV[7], 'tn', ARGV[8],
  'turl', ARGV[9])
redis.call('SADD', S(shop) .. ':o:' .. oid .. ':ful', fid)
return 1
