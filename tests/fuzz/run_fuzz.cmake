# run_fuzz.cmake - runs one libFuzzer target for ctest (tests/fuzz/
# CMakeLists.txt). cmake -P with:
#   FUZZER   the program
#   CORPUS   its seed corpus in the repository (never written to)
#   REGRESS  its regression inputs (crashes found and fixed)
#   WORK     a scratch directory in the build tree
#   DICT     its dictionary, or empty
#   MODE     fuzz: SECONDS of fuzzing on a fresh copy of CORPUS in WORK;
#            regress: every file of REGRESS and CORPUS once
# A crash leaves its input in WORK (crash-..., leak-..., timeout-...).
cmake_minimum_required(VERSION 3.18)

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus)
set(args -timeout=10 -rss_limit_mb=2048 -artifact_prefix=${WORK}/)
if(DICT)
    list(APPEND args -dict=${DICT})
endif()

if(MODE STREQUAL "fuzz")
    if(IS_DIRECTORY ${CORPUS})
        file(GLOB seeds ${CORPUS}/*)
        if(seeds)
            file(COPY ${seeds} DESTINATION ${WORK}/corpus)
        endif()
    endif()
    list(APPEND args -max_total_time=${SECONDS} -print_final_stats=1
         ${WORK}/corpus)
elseif(MODE STREQUAL "regress")
    file(GLOB inputs ${REGRESS}/* ${CORPUS}/*)
    list(FILTER inputs EXCLUDE REGEX "/README[^/]*$")
    if(NOT inputs)
        message(STATUS "no inputs to run")
        return()
    endif()
    list(LENGTH inputs n)
    message(STATUS "running ${n} inputs once each")
    list(APPEND args ${inputs})
else()
    message(FATAL_ERROR "MODE must be fuzz or regress")
endif()

execute_process(COMMAND ${FUZZER} ${args} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 AND MODE STREQUAL "fuzz")
    message(FATAL_ERROR "${FUZZER} failed (${rc}); the input that broke it "
                        "is in ${WORK} (tests/fuzz/README.md: when a target "
                        "crashes)")
elseif(NOT rc EQUAL 0)
    message(FATAL_ERROR "${FUZZER} failed (${rc}) on an input of ${REGRESS} "
                        "or ${CORPUS}: the output above names it")
endif()
