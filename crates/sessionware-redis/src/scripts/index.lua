-- Keeps a user's index set: the ids of the sessions bound to the user.
-- KEYS[1] the user's set
-- ARGV[1] 'add' or 'rem'; ARGV[2] the session id
-- ARGV[3] with 'add': the session's deadline (Unix ms); ARGV[4] now (Unix ms)
-- The set's TTL is kept at or past the furthest deadline of its members, so it never ends
-- before a live session it lists, and ends by itself once they all have.
local key = KEYS[1]
if ARGV[1] == 'rem' then
  redis.call('SREM', key, ARGV[2])
  return 1
end
redis.call('SADD', key, ARGV[2])
local deadline = tonumber(ARGV[3])
local ttl = redis.call('PTTL', key)
if ttl < 0 or tonumber(ARGV[4]) + ttl < deadline then
  redis.call('PEXPIREAT', key, ARGV[3])
end
return 1
