-- Reads a session and, in the same round trip, moves its deadline when the expiry policy asks.
-- KEYS[1] the session key
-- ARGV[1] now (Unix ms)
-- ARGV[2] '1' to refresh, '0' to only read
-- ARGV[3] the idle deadline, now + idle timeout (Unix ms)
-- ARGV[4] the absolute lifetime (ms), or -1 for none
-- ARGV[5] the refresh interval (ms)
-- Returns {0} when there is no live session, {-1} when the key is not a session,
-- or {1, refreshed (0|1), HGETALL}.
local key = KEYS[1]
local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then return {0} end
if kind ~= 'hash' then return {-1} end
local expires = tonumber(redis.call('HGET', key, 'expires_at'))
if not expires then return {-1} end
if expires <= tonumber(ARGV[1]) then return {0} end
local refreshed = 0
if ARGV[2] == '1' then
  local created = tonumber(redis.call('HGET', key, 'created_at'))
  if not created then return {-1} end
  -- The same rule as ExpiryPolicy::refreshed_deadline, evaluated here so a read that
  -- refreshes costs one round trip.
  local next = tonumber(ARGV[3])
  local absolute = tonumber(ARGV[4])
  if absolute >= 0 and created + absolute < next then next = created + absolute end
  local moved = next - expires
  if moved > 0 and moved >= tonumber(ARGV[5]) then
    local deadline = string.format('%d', next)
    redis.call('HSET', key, 'expires_at', deadline)
    redis.call('PEXPIREAT', key, deadline)
    refreshed = 1
  end
end
return {1, refreshed, redis.call('HGETALL', key)}
