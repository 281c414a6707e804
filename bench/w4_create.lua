-- W4: POST /v1/users with a password (bcrypt at BCRYPT_ROUNDS), each e-mail new.
-- wrk ... -s w4_create.lua URL -- RUN_TAG TOKEN
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "common.lua")

local tag, headers, counter = "", nil, 0

function init(args)
   tag = args[1] .. "-" .. (thread_no or 0)
   headers = { ["Authorization"] = "Bearer " .. args[2], ["Content-Type"] = "application/json" }
end

function request()
   counter = counter + 1
   local body = '{"email":"bench-w4-' .. tag .. '-' .. counter .. '@bench.example",' ..
                '"name":"Bench Signup","password":"correct horse battery staple"}'
   return wrk.format("POST", "/v1/users", headers, body)
end
