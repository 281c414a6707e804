-- W1: GET /v1/users/{id}, a random id from the ids file per request.
-- wrk ... -s w1_user.lua URL -- IDS_FILE TOKEN
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local ids, headers

function init(args)
   ids = read_lines(args[1])
   headers = { ["Authorization"] = "Bearer " .. args[2] }
   seed_random()
end

function request()
   return wrk.format("GET", "/v1/users/" .. ids[math.random(#ids)], headers)
end
