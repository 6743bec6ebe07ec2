-- Applies change sets to live sessions, each atomically, in order; never brings one back.
-- KEYS: the session key of each change set (a key may come again: its change sets apply in
-- turn). ARGV: per change set, in the order of KEYS, eight header values, then its arguments:
-- [1] now, [2] the new expires_at (Unix ms), [3] '1' to drop every data field first,
-- [4] the version the caller's near cache holds ('-1': none), or '-' for no cache,
-- [5] the number of field, value pairs to set, the last of them `expires_at` (so the
-- deadline is written by the same HSET as the data), [6] the number of fields to remove,
-- [7] the number of guards, [8] the number of increments. Then, in that order: the pairs;
-- the fields to remove; per guard the field, '1' and the JSON it must hold, or '0' and ''
-- for a field that must be absent; per increment the field, the step, and the bound the
-- stored integer must not pass (`i64::MAX - step` for a step >= 0, `i64::MIN - step` below).
-- Returns one answer per change set: 0 when there is no live session, -1 when the key is not
-- a session; when applied, the session's new version (`v`, which every write bumps), or
-- {version, the whole hash} for the key's last change set in the call when the caller's
-- cache cannot follow its writes from the version it sent (another change set of the key
-- came first in the call, or the cache held another version). Refused, writing nothing:
-- {-2, field} an increment of a field that holds no integer, {-3, field} one that would
-- overflow, {-4, version, the whole hash} a guard that does not hold.
-- The last command on a key reads it when the caller caches it, so a connection that tracks
-- it (the near cache) still does.

-- Canonical decimal integers (no sign but '-', no leading zero) compared as text: exact over
-- the whole i64 range, which Lua's doubles are not.
local function cmp(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then return na and -1 or 1 end
  local da, db = na and string.sub(a, 2) or a, nb and string.sub(b, 2) or b
  local c = 0
  if #da ~= #db then
    c = #da < #db and -1 or 1
  elseif da ~= db then
    c = da < db and -1 or 1
  end
  return na and -c or c
end
local function is_i64(s)
  if not (s == '0' or string.match(s, '^%-?[1-9]%d*$')) then return false end
  return cmp(s, '-9223372036854775808') >= 0 and cmp(s, '9223372036854775807') <= 0
end

-- The change set whose header is ARGV[b + 1 .. b + 8], on `key`; `last` is the index of its
-- last argument. An applied write answers its version when `answer` is 'version' (no cache,
-- or a later change set of the key, which reads it again, comes in the call), the whole
-- hash when it is 'whole', and when it is 'follow' the version if the caller's cache held
-- the one just before this write, else the whole hash.
local function apply(key, b, last, answer)
  local expires, current = live(key, tonumber(ARGV[b + 1]))
  if not expires then return current end
  local version = current + 1
  local clear = ARGV[b + 3] == '1'
  local sets_end = b + 8 + 2 * tonumber(ARGV[b + 5])
  local removals_end = sets_end + tonumber(ARGV[b + 6])
  local guards_end = removals_end + 3 * tonumber(ARGV[b + 7])

  -- Everything is checked before anything is written: a script that fails half-way keeps
  -- what it wrote.
  local i = removals_end + 1
  while i <= guards_end do
    local stored = redis.call('HGET', key, ARGV[i])
    local holds
    if ARGV[i + 1] == '1' then holds = stored == ARGV[i + 2] else holds = stored == false end
    if not holds then
      return {-4, current, redis.call('HRANDFIELD', key, redis.call('HLEN', key), 'WITHVALUES')}
    end
    i = i + 3
  end
  -- After a clear every increment counts from 0, and a step alone never overflows.
  if not clear then
    while i <= last do
      local stored = redis.call('HGET', key, ARGV[i])
      if stored then
        if not is_i64(stored) then return {-2, ARGV[i]} end
        local c = cmp(stored, ARGV[i + 2])
        if (string.sub(ARGV[i + 1], 1, 1) == '-' and c < 0) or
           (string.sub(ARGV[i + 1], 1, 1) ~= '-' and c > 0) then
          return {-3, ARGV[i]}
        end
      end
      i = i + 3
    end
  end

  if clear then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.sub(field, 1, 2) == 'd:' then redis.call('HDEL', key, field) end
    end
  end
  -- In slices: unpack is bounded by Lua's C stack. The version rides on the first one.
  i = b + 9
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
  while i <= removals_end do
    local j = math.min(i + 199, removals_end)
    redis.call('HDEL', key, unpack(ARGV, i, j))
    i = j + 1
  end
  -- HINCRBY keeps the field a decimal integer, which is its JSON text too.
  i = guards_end + 1
  while i <= last do
    redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
    i = i + 3
  end
  -- Every write of the store sets the TTL with the deadline, so an unchanged deadline has it
  -- right already: most writes move none (the policy moves it at most once per refresh
  -- interval), and the command skipped is Redis CPU saved on every such write.
  if tonumber(ARGV[b + 2]) ~= expires then redis.call('PEXPIREAT', key, ARGV[b + 2]) end
  if answer == 'version' then return version end
  if answer == 'follow' and tonumber(ARGV[b + 4]) == version - 1 then
    redis.call('EXISTS', key)
    return version
  end
  -- The whole hash, by HRANDFIELD with a count of its length rather than HGETALL, so that a
  -- server's `INFO commandstats` tells the loads the store sends from what runs in here.
  return {version, redis.call('HRANDFIELD', key, redis.call('HLEN', key), 'WITHVALUES')}
end

-- A key's change sets in one call are answered with bare versions, and its last one with the
-- whole hash: the requests that sent them take the answers in in any order, and the cache
-- ends at the last write's state whichever comes first. A session many requests write at
-- once costs one whole hash a call, not one a write.
local final, shared = {}, {}
for k = 1, #KEYS do
  if final[KEYS[k]] then shared[KEYS[k]] = true end
  final[KEYS[k]] = k
end
local answers = {}
local b = 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local last = b + 8 + 2 * tonumber(ARGV[b + 5]) + tonumber(ARGV[b + 6])
    + 3 * (tonumber(ARGV[b + 7]) + tonumber(ARGV[b + 8]))
  local answer = 'version'
  if final[key] == k and ARGV[b + 4] ~= '-' then
    answer = shared[key] and 'whole' or 'follow'
  end
  answers[k] = apply(key, b, last, answer)
  b = last
end
return answers
