-- ARGV: stale_after seconds
local found = view(false, tonumber(ARGV[1]))
save()
return found
