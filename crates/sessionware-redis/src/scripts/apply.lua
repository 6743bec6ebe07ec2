-- Applies change sets to live sessions, each atomically, in order; never brings one back.
-- KEYS: the session key of each change set (a key may come again: its change sets apply in
-- turn). ARGV: per change set, in the order of KEYS, a header of four values, then its
-- arguments. The header: [1] now and [2] the new expires_at (Unix ms); [3] the answer the
-- caller wants: '-' the bare version, '*' the whole hash, or the version its near cache
-- holds, which asks for the bare version when the write follows that one and for the whole
-- hash otherwise; [4] the shape: the number of field, value pairs to set, alone when that is
-- all, else "pairs,removals,guards,increments,clear" ('1' to drop every data field first).
-- Then, in that order: the pairs; the fields to remove; per guard the field, '1' and the
-- JSON it must hold, or '0' and '' for a field that must be absent; per increment the field,
-- the step, and the bound the stored integer must not pass (`i64::MAX - step` for a step
-- >= 0, `i64::MIN - step` below). The script writes `v` and `expires_at` itself.
-- Returns one answer per change set: 0 when there is no live session, -1 when the key is not
-- a session; when applied, the session's new version (`v`, which every write bumps), or
-- {version, the whole hash}. Refused, writing nothing: {-2, field} an increment of a field
-- that holds no integer, {-3, field} one that would overflow, {-4, version, the whole hash}
-- a guard that does not hold.
-- The caller chooses the answers (see `answers_for_batch` in store.rs): a change set another
-- of the same key follows in the call answers its bare version. Each key the caller caches
-- is read after the call's last write of it (by its whole hash, or by one `EXISTS` of all
-- such keys at the end), so a connection that tracks it (the near cache) still does.
-- Every argument costs Redis a Lua string, and every line here runs per change set, so the
-- common write (a few pairs, an unchanged deadline, a cached version) is kept to the fewest.

-- The whole hash is read by HRANDFIELD with a count of its length rather than HGETALL, so
-- that a server's `INFO commandstats` tells the loads the store sends from what runs in here.

-- The checks of guards and increments, built at the first change set that has any: each
-- function a script defines is made again on every call, and most calls need none of these.
local function checks()
  -- Canonical decimal integers (no sign but '-', no leading zero) compared as text:
  -- exact over the whole i64 range, which Lua's doubles are not.
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

  -- Checks before anything is written (a script that fails half-way keeps what it
  -- wrote): nil when the guards hold and the increments fit, else the refusal.
  return function(key, clear, guards_from, guards_end, last)
    local i = guards_from
    while i <= guards_end do
      local stored = redis.call('HGET', key, ARGV[i])
      local holds
      if ARGV[i + 1] == '1' then
        holds = stored == ARGV[i + 2]
      else
        holds = stored == false
      end
      if not holds then
        return {-4, tonumber(redis.call('HGET', key, 'v')) or 0,
          redis.call('HRANDFIELD', key, redis.call('HLEN', key), 'WITHVALUES')}
      end
      i = i + 3
    end
    -- After a clear every increment counts from 0, and a step alone never overflows.
    if clear then return nil end
    while i <= last do
      local stored = redis.call('HGET', key, ARGV[i])
      if stored then
        if not is_i64(stored) then return {-2, ARGV[i]} end
        local c = cmp(stored, ARGV[i + 2])
        local down = string.sub(ARGV[i + 1], 1, 1) == '-'
        if (down and c < 0) or (not down and c > 0) then return {-3, ARGV[i]} end
      end
      i = i + 3
    end
    return nil
  end
end
local refusal

local answers = {}
-- The keys to read at the end: written here, cached by the caller, answered bare.
local tracked = {}
local b = 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local shape = ARGV[b + 4]
  local sets, removals, guards, increments, clear = tonumber(shape), 0, 0, 0, false
  if not sets then
    local p, r, g, n, c = string.match(shape, '^(%d+),(%d+),(%d+),(%d+),([01])$')
    sets, removals, guards, increments = tonumber(p), tonumber(r), tonumber(g), tonumber(n)
    clear = c == '1'
  end
  local sets_end = b + 4 + 2 * sets
  local removals_end = sets_end + removals
  local guards_end = removals_end + 3 * guards
  local last = guards_end + 3 * increments
  local expires, dead = live(key, ARGV[b + 1])
  if not expires then
    answers[k] = dead
  else
    local answer = nil
    if guards + increments > 0 then
      refusal = refusal or checks()
      answer = refusal(key, clear, removals_end + 1, guards_end, last)
    end
    if not answer then
      local version = bump(key)
      if clear then
        for _, field in ipairs(redis.call('HKEYS', key)) do
          if string.sub(field, 1, 2) == 'd:' then redis.call('HDEL', key, field) end
        end
      end
      -- In slices: unpack is bounded by Lua's C stack. The deadline rides on the first one.
      local j = math.min(b + 204, sets_end)
      redis.call('HSET', key, 'expires_at', ARGV[b + 2], unpack(ARGV, b + 5, j))
      local i = j + 1
      while i <= sets_end do
        j = math.min(i + 199, sets_end)
        redis.call('HSET', key, unpack(ARGV, i, j))
        i = j + 1
      end
      while i <= removals_end do
        j = math.min(i + 199, removals_end)
        redis.call('HDEL', key, unpack(ARGV, i, j))
        i = j + 1
      end
      -- HINCRBY keeps the field a decimal integer, which is its JSON text too.
      i = guards_end + 1
      while i <= last do
        redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
        i = i + 3
      end
      -- Every write of the store sets the TTL with the deadline, so an unchanged deadline has
      -- it right already: most writes move none (the policy moves it at most once per refresh
      -- interval), and the command skipped is Redis CPU saved on every such write.
      if tonumber(ARGV[b + 2]) ~= expires then redis.call('PEXPIREAT', key, ARGV[b + 2]) end
      local wanted = ARGV[b + 3]
      if wanted == '-' then
        answer = version
      elseif wanted ~= '*' and tonumber(wanted) == version - 1 then
        tracked[#tracked + 1] = key
        answer = version
      else
        answer = {version,
          redis.call('HRANDFIELD', key, redis.call('HLEN', key), 'WITHVALUES')}
      end
    end
    answers[k] = answer
  end
  b = last
end
if #tracked > 0 then redis.call('EXISTS', unpack(tracked)) end
return answers
