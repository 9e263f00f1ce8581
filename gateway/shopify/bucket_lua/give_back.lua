-- ARGV: hold, refund, then (when the answer told Shopify's balance) maximum, available, restore rate, throttled (0/1)
local hold, refund = ARGV[1], tonumber(ARGV[2])
local points = tonumber(redis.call('HGET', holds_key, hold))
if points then
  available = math.min(maximum, available + math.min(refund, points))
  redis.call('HDEL', holds_key, hold)
  redis.call('ZREM', expiry_key, hold)
end
if #ARGV >= 6 then
  local s_maximum, s_available, s_rate = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  if s_maximum ~= maximum then
    maximum = s_maximum
    available = math.min(available, maximum)
  end
  rate = s_rate
  told_at = now
  -- nothing else in flight: Shopify's balance is the truth; otherwise only a THROTTLED answer's lower balance is
  -- (see BucketModel.give_back)
  if redis.call('HLEN', holds_key) == 0 or (ARGV[6] == '1' and s_available < available) then
    available = s_available
  end
end
save()
return 1
