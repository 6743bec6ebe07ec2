-- Bumps the session's version and reads it back: the read comes after every write of the
-- script, so a connection that tracks the key (the near cache) keeps tracking it.
local function bump(key)
  if not pcall(redis.call, 'HINCRBY', key, 'v', 1) then
    -- Not a counter (written by hand): start again; readers compare versions only with
    -- what they read themselves, and the change notified them anyway.
    redis.call('HSET', key, 'v', 1)
  end
  return tonumber(redis.call('HGET', key, 'v'))
end
