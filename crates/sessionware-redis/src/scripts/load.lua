-- Reads a session and, in the same round trip, moves its deadline when the expiry policy asks.
-- KEYS[1] the session key
-- ARGV[1] now (Unix ms)
-- ARGV[2] '1' to refresh, '0' to only read
-- ARGV[3] the idle deadline, now + idle timeout (Unix ms)
-- ARGV[4] the absolute lifetime (ms), or -1 for none
-- ARGV[5] the refresh interval (ms)
-- Returns {0} when there is no live session, {-1} when the key is not a session,
-- or {1, refreshed (0|1), HGETALL}.
-- One HGETALL does it all on the hot path: no TYPE, no HGET (a key of another type makes
-- HGETALL fail, which pcall turns into -1).
local key = KEYS[1]
local ok, fields = pcall(redis.call, 'HGETALL', key)
if not ok then return {-1} end
if #fields == 0 then return {0} end
local expires, created
for i = 1, #fields, 2 do
  local f = fields[i]
  if f == 'expires_at' then expires = tonumber(fields[i + 1])
  elseif f == 'created_at' then created = tonumber(fields[i + 1]) end
end
if not expires then return {-1} end
if expires <= tonumber(ARGV[1]) then return {0} end
local refreshed = 0
if ARGV[2] == '1' then
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
    for i = 1, #fields, 2 do
      if fields[i] == 'expires_at' then fields[i + 1] = deadline end
    end
  end
end
return {1, refreshed, fields}
