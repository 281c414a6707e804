-- W2: POST /v1/sessions/lookup {"sessionToken": ...}, a random token from the tokens file per request.
-- wrk ... -s w2_session.lua URL -- TOKENS_FILE TOKEN
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local bodies, headers

function init(args)
   bodies = {}
   for i, token in ipairs(read_lines(args[1])) do
      bodies[i] = '{"sessionToken":"' .. token .. '"}'
   end
   headers = { ["Authorization"] = "Bearer " .. args[2], ["Content-Type"] = "application/json" }
   seed_random()
end

function request()
   return wrk.format("POST", "/v1/sessions/lookup", headers, bodies[math.random(#bodies)])
end
