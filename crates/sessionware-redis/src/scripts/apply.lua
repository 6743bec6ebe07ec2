-- Applies a change set to a live session, atomically; never brings one back.
-- KEYS[1] the session key
-- ARGV[1] now, ARGV[2] the new expires_at (Unix ms)
-- ARGV[3] '1' to drop every data field first
-- ARGV[4] the number of field, value pairs that follow, the last of them `expires_at` (so the
-- deadline is written by the same HSET as the data); then the fields to remove
-- Returns the session's version after the change (the `v` field, which every write bumps;
-- at least 1) when applied, 0 when there is no live session, -1 when the key is not a session.
-- The last command reads the key, so a connection that tracks it (the near cache) still does.
local key = KEYS[1]
-- HGET on a missing key is false, on a key of another type an error (pcall): no TYPE needed.
local ok, raw = pcall(redis.call, 'HGET', key, 'expires_at')
if not ok then return -1 end
if not raw then
  if redis.call('EXISTS', key) == 1 then return -1 end
  return 0
end
local expires = tonumber(raw)
if not expires then return -1 end
if expires <= tonumber(ARGV[1]) then return 0 end
if ARGV[3] == '1' then
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, 2) == 'd:' then redis.call('HDEL', key, field) end
  end
end
local sets_end = 4 + 2 * tonumber(ARGV[4])
local i = 5
while i <= sets_end do
  local j = math.min(i + 199, sets_end)
  redis.call('HSET', key, unpack(ARGV, i, j))
  i = j + 1
end
i = sets_end + 1
while i <= #ARGV do
  local j = math.min(i + 199, #ARGV)
  redis.call('HDEL', key, unpack(ARGV, i, j))
  i = j + 1
end
redis.call('PEXPIREAT', key, ARGV[2])
return bump(key)
