-- ARGV: P, id, attempt JSON, how many to keep
local k = PK(ARGV[2]) .. ':att'
redis.call('RPUSH', k, ARGV[3])
redis.call('LTRIM', k, -tonumber(ARGV[4]), -1)
return 1
