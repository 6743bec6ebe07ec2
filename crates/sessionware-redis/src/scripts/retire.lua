-- The second half of a rekey on a Cluster, where the old and the new key live in different
-- slots: ends the old session, but only if it is still live and bound as the caller saw it.
-- A refusal tells the caller to drop the copy it just made, so a session revoked meanwhile is
-- never brought back under its new id.
-- KEYS[1] the old session key; ARGV[1] now (Unix ms); ARGV[2] '1' when the session must be
-- bound to ARGV[3], '0' when it must be unbound
-- Returns 1 when it was ended, 0 when it was not live or not bound so, -1 when the key is not
-- a session (left as it is).
local key = KEYS[1]
local ok, raw = pcall(redis.call, 'HGET', key, 'expires_at')
if not ok then return -1 end
if not raw then
  if redis.call('EXISTS', key) == 1 then return -1 end
  return 0
end
local expires = tonumber(raw)
if not expires then return -1 end
if expires <= tonumber(ARGV[1]) then return 0 end
local user = redis.call('HGET', key, 'user')
if ARGV[2] == '1' then
  if user ~= ARGV[3] then return 0 end
elseif user then
  return 0
end
redis.call('DEL', key)
return 1
