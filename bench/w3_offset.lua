-- W3 by offset: GET /v1/users?sort=-createdAt&limit=20&page=N&count=MODE, N random in 1..MAX_PAGE
-- (MAX_PAGE 251: offsets up to 5,000). The list baseline serves the same path.
-- wrk ... -s w3_offset.lua URL -- MAX_PAGE COUNT_MODE TOKEN
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local max_page, prefix, headers

function init(args)
   max_page = tonumber(args[1])
   prefix = "/v1/users?sort=-createdAt&limit=20&count=" .. args[2] .. "&page="
   headers = { ["Authorization"] = "Bearer " .. args[3] }
   seed_random()
end

function request()
   return wrk.format("GET", prefix .. math.random(max_page), headers)
end
