-- Moves a live session to a new id in one atomic step (a sign-in, a privilege change). The
-- checks come before any write so that a refusal leaves nothing behind, and the move is one
-- script so that no moment exists at which both ids load or a revoked session comes back.
-- KEYS[1] the old session key, KEYS[2] the new one; then, when ARGV[2] is '1', the expected
-- user's set; last, when ARGV[8] is '1', the new user's set (the same key if the same user)
-- ARGV[1] now (Unix ms); ARGV[2] '1' when the old session must be bound to ARGV[3], '0' when
-- it must be unbound; ARGV[4] the old id, ARGV[5] the new id (the members of the sets)
-- ARGV[6..] as create.lua's ARGV[1..]: created_at, expires_at, '1' when bound to ARGV[9], then
-- field, value pairs of the data
-- Returns 1 when moved, 0 when the old session is not live or not bound as expected, 2 when
-- the new key is taken (the caller draws another id), -1 when the old key is not a session.
local old, new = KEYS[1], KEYS[2]
-- As apply.lua: HGET errors on a key of another type and answers false on a missing one.
local ok, raw = pcall(redis.call, 'HGET', old, 'expires_at')
if not ok then return -1 end
if not raw then
  if redis.call('EXISTS', old) == 1 then return -1 end
  return 0
end
local expires = tonumber(raw)
if not expires then return -1 end
local now = tonumber(ARGV[1])
if expires <= now then return 0 end
local user = redis.call('HGET', old, 'user')
if ARGV[2] == '1' then
  if user ~= ARGV[3] then return 0 end
elseif user then
  return 0
end
if redis.call('EXISTS', new) == 1 then return 2 end
-- The index entry first: a set key of the wrong type fails the script before it has written
-- anything. Its TTL follows index.lua's rule: never before a live member's deadline.
if ARGV[8] == '1' then
  local set = KEYS[#KEYS]
  redis.call('SADD', set, ARGV[5])
  local ttl = redis.call('PTTL', set)
  if ttl < 0 or now + ttl < tonumber(ARGV[7]) then
    redis.call('PEXPIREAT', set, ARGV[7])
  end
end
-- The hash as create.lua lays it out.
redis.call('HSET', new, 'created_at', ARGV[6], 'expires_at', ARGV[7])
if ARGV[8] == '1' then redis.call('HSET', new, 'user', ARGV[9]) end
local i = 10
while i <= #ARGV do
  local j = math.min(i + 199, #ARGV)
  redis.call('HSET', new, unpack(ARGV, i, j))
  i = j + 1
end
redis.call('PEXPIREAT', new, ARGV[7])
redis.call('DEL', old)
if ARGV[2] == '1' then redis.call('SREM', KEYS[3], ARGV[4]) end
return 1
