-- One shop's bucket copy, shared by the replicas: the same arithmetic as gateway.shopify.bucket.BucketModel, on
-- Redis's clock. KEYS[1]: the state hash (maximum, restore_rate, available, at, told_at, seq); KEYS[2]: hold ->
-- points; KEYS[3]: hold -> expiry, KEYS[4]: hold -> when it was booked (sorted sets). A hold whose replica died expires
-- and gives its points back.
local state_key, holds_key, expiry_key, order_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local STANDARD_MAXIMUM, STANDARD_RATE = 2000, 100
local KEEP_SECONDS = 86400

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000

local v = redis.call('HMGET', state_key, 'maximum', 'restore_rate', 'available', 'at', 'told_at')
local maximum = tonumber(v[1]) or STANDARD_MAXIMUM
local rate = tonumber(v[2]) or STANDARD_RATE
local available = tonumber(v[3]) or maximum
local at = tonumber(v[4]) or now
local told_at = tonumber(v[5])

if now > at then
  available = math.min(maximum, available + (now - at) * rate)
  at = now
end

for _, hold in ipairs(redis.call('ZRANGEBYSCORE', expiry_key, '-inf', now)) do
  local points = tonumber(redis.call('HGET', holds_key, hold))
  if points then
    available = math.min(maximum, available + points)
    redis.call('HDEL', holds_key, hold)
  end
  redis.call('ZREM', expiry_key, hold)
  redis.call('ZREM', order_key, hold)
end

local function held()
  local sum = 0
  for _, points in ipairs(redis.call('HVALS', holds_key)) do sum = sum + tonumber(points) end
  return sum
end

local function is_fresh(stale_after)
  return told_at ~= nil and now - told_at <= stale_after
end

local function save()
  local fields = {'maximum', maximum, 'restore_rate', rate, 'available', available, 'at', at}
  if told_at ~= nil then
    table.insert(fields, 'told_at'); table.insert(fields, told_at)
  end
  redis.call('HSET', state_key, unpack(fields))
  redis.call('EXPIRE', state_key, KEEP_SECONDS)
  redis.call('EXPIRE', holds_key, KEEP_SECONDS)
  redis.call('EXPIRE', expiry_key, KEEP_SECONDS)
  redis.call('EXPIRE', order_key, KEEP_SECONDS)
end

-- numbers as strings: Redis would truncate a Lua number to an integer
local function view(taken, stale_after)
  return {taken and 1 or 0, tostring(available), tostring(maximum), tostring(rate), tostring(held()),
          is_fresh(stale_after) and 1 or 0}
end
