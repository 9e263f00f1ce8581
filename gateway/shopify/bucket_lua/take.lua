-- ARGV: hold, points, keep_free, ttl seconds, stale_after seconds, reached_after seconds
local hold, points, keep_free = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, stale_after = tonumber(ARGV[4]), tonumber(ARGV[5])
local fresh = is_fresh(stale_after)
-- (order_key: hold -> when it was booked)
local in_flight = #redis.call('ZRANGEBYSCORE', order_key, '(' .. (now - tonumber(ARGV[6])), '+inf', 'LIMIT', 0, 1) > 0
local taken
if not fresh and in_flight then
  -- without a recent balance a hold goes alone (another one booked within reached_after is on its way): its
  -- answer tells the truth before others follow
  taken = false
else
  taken = available - points >= keep_free
end
local found = view(false, stale_after)
if taken then
  redis.call('HSET', holds_key, hold, points)
  redis.call('ZADD', expiry_key, now + ttl, hold)
  redis.call('ZADD', order_key, now, hold)
  available = available - points
  found[1] = 1
end
save()
return found
