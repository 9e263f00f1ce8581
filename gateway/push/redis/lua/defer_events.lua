-- ARGV: P, until, owner, seqs... : those `owner` still holds stay pending, unclaimable until `until`, owned by nobody
local owner = ARGV[3]
for i = 4, #ARGV do
  local seq = ARGV[i]
  local k = P .. ':ev:' .. seq
  local f = redis.call('HMGET', k, 'own', 'status')
  if f[1] == owner and f[2] == 'pending' then
    redis.call('ZREM', P .. ':ev:ready', seq)
    redis.call('ZADD', P .. ':ev:leased', ARGV[2], seq)
    redis.call('HSET', k, 'own', '')
    unhold('e:' .. seq, owner)
  end
end
return 1
