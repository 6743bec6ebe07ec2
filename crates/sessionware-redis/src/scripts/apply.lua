-- Applies a change set to a live session, atomically; never brings one back.
-- KEYS[1] the session key
-- ARGV[1] now, ARGV[2] the new expires_at (Unix ms)
-- ARGV[3] '1' to drop every data field first
-- ARGV[4] the version the caller's near cache holds ('-1': none), or '-' for no cache
-- ARGV[5] the number of field, value pairs that follow, the last of them `expires_at` (so the
-- deadline is written by the same HSET as the data); then the fields to remove
-- Returns 0 when there is no live session, -1 when the key is not a session; when applied,
-- the session's new version (`v`, which every write bumps), or, when the caller's cache did
-- not hold the version just before this write, {version, the whole hash}.
-- The last command reads the key, so a connection that tracks it (the near cache) still does.
local key = KEYS[1]
-- HMGET on a missing key is all false, on a key of another type an error (pcall).
local ok, got = pcall(redis.call, 'HMGET', key, 'expires_at', 'v')
if not ok then return -1 end
if not got[1] then
  if redis.call('EXISTS', key) == 1 then return -1 end
  return 0
end
local expires = tonumber(got[1])
if not expires then return -1 end
if expires <= tonumber(ARGV[1]) then return 0 end
local version = (tonumber(got[2]) or 0) + 1
if ARGV[3] == '1' then
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, 2) == 'd:' then redis.call('HDEL', key, field) end
  end
end
-- In slices: unpack is bounded by Lua's C stack. The version rides on the first one.
local sets_end = 5 + 2 * tonumber(ARGV[5])
local i = 6
local first = true
while i <= sets_end do
  local j = math.min(i + 199, sets_end)
  if first then
    redis.call('HSET', key, 'v', version, unpack(ARGV, i, j))
    first = false
  else
    redis.call('HSET', key, unpack(ARGV, i, j))
  end
  i = j + 1
end
i = sets_end + 1
while i <= #ARGV do
  local j = math.min(i + 199, #ARGV)
  redis.call('HDEL', key, unpack(ARGV, i, j))
  i = j + 1
end
redis.call('PEXPIREAT', key, ARGV[2])
if ARGV[4] == '-' or tonumber(ARGV[4]) == version - 1 then
  redis.call('EXISTS', key)
  return version
end
-- The whole hash, by HRANDFIELD with a count of its length rather than HGETALL, so that a
-- server's `INFO commandstats` tells the loads the store sends from what runs in here.
return {version, redis.call('HRANDFIELD', key, redis.call('HLEN', key), 'WITHVALUES')}
