-- ARGV: P, row keys... → for each row its lease owner ('' when nobody holds it), or nil when the row is gone
local out = {}
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[i]) == 1 then
    out[#out + 1] = redis.call('HGET', ARGV[i], 'own') or ''
  else
    out[#out + 1] = false
  end
end
return out
