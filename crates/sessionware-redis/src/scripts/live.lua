-- The check every write script starts with, prepended to apply.lua and touch.lua, and the
-- version bump that follows it.
--
-- Both read by writing. A read command inside a script makes Redis 7.0 track every key of
-- the call for the caller, and the script's write makes it forget the key again, so a read
-- before the writes costs the tracking table one entry per key of the call, for nothing; a
-- batch of n change sets paid n * n. The write scripts read once, after their writes.

-- Numbers passed to `redis.call` cost a `printf` each, so the arguments here are strings.

-- The stored deadline (Unix ms) of the live session at `key`; or nil and the script's answer:
-- 0 when there is no live session, -1 when the key is not a session. `now` is Unix ms, as a
-- string. `HINCRBY` by 0 answers the stored deadline and changes nothing, except where the
-- field is missing: then it made it, with 0, and that is taken back out.
local function live(key, now)
  local ok, expires = pcall(redis.call, 'HINCRBY', key, 'expires_at', '0')
  if not ok then return nil, -1 end
  if expires == 0 then
    -- No write of the store leaves a deadline of 0, so the field is the one HINCRBY made
    -- (this rare path may read): alone, on a key that did not exist; or in a hash that had
    -- no deadline, which is not a session.
    if redis.call('HLEN', key) == 1 then
      redis.call('DEL', key)
      return nil, 0
    end
    redis.call('HDEL', key, 'expires_at')
    return nil, -1
  end
  if expires <= tonumber(now) then return nil, 0 end
  return expires
end

-- Bumps the version of the live session at `key` and answers the new one. A version that
-- holds no integer counts as 0, as the store's loads read it.
local function bump(key)
  local ok, version = pcall(redis.call, 'HINCRBY', key, 'v', '1')
  if ok then return version end
  redis.call('HSET', key, 'v', '1')
  return 1
end
