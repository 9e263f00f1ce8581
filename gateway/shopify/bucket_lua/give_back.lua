-- ARGV: hold, refund, then (when the answer told Shopify's balance) maximum, available, restore rate, throttled (0/1),
-- the seconds after which a booked request has reached Shopify.
-- The arithmetic of BucketModel.give_back, which says why.
local hold, refund = ARGV[1], tonumber(ARGV[2])
local points = tonumber(redis.call('HGET', holds_key, hold))
redis.call('HDEL', holds_key, hold)
redis.call('ZREM', expiry_key, hold)
redis.call('ZREM', order_key, hold)
if points then
  available = math.min(maximum, available + math.min(refund, points))
end
if #ARGV >= 7 then
  local s_maximum, s_available, s_rate = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  -- the other holds booked within the last ARGV[7] seconds: they may not have reached Shopify yet
  local later = redis.call('ZRANGEBYSCORE', order_key, '(' .. (now - tonumber(ARGV[7])), '+inf')
  local out = 0
  if #later > 0 then
    for _, p in ipairs(redis.call('HMGET', holds_key, unpack(later))) do out = out + (tonumber(p) or 0) end
  end
  local told = s_available - out
  local proved = ARGV[6] == '1' or s_maximum ~= maximum or redis.call('HLEN', holds_key) == 0
  maximum, rate = s_maximum, s_rate
  if proved then
    available = math.min(maximum, told)
  else
    available = math.min(maximum, math.max(available, told))
  end
  told_at = now
end
save()
return 1
