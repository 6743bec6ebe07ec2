-- Stores a new session, never over an existing key.
-- KEYS[1] the session key
-- ARGV[1] created_at, ARGV[2] expires_at (Unix ms), ARGV[3] '1' when bound to ARGV[4] (user)
-- ARGV[5..] field, value pairs of the data
-- Returns 1 when stored, 0 when the key is taken.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, 'created_at', ARGV[1], 'expires_at', ARGV[2])
if ARGV[3] == '1' then redis.call('HSET', key, 'user', ARGV[4]) end
-- In slices: unpack is bounded by Lua's C stack.
local i = 5
while i <= #ARGV do
  local j = math.min(i + 199, #ARGV)
  redis.call('HSET', key, unpack(ARGV, i, j))
  i = j + 1
end
redis.call('PEXPIREAT', key, ARGV[2])
return 1
