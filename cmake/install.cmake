# cmake --install: headers, the static libraries, udshttpd and udshttp, an exported CMake
# package (find_package(udshttp CONFIG) -> udshttp::client, udshttp::service, udshttp::proto)
# with a version file, a pkg-config file, and the systemd units. CPack makes a .deb of it.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(udshttp_proto PROPERTIES EXPORT_NAME proto)
set_target_properties(udshttp_service PROPERTIES EXPORT_NAME service)
set_target_properties(udshttp_client PROPERTIES EXPORT_NAME client)
set_target_properties(udshttp_boost_impl PROPERTIES EXPORT_NAME boost_impl)

install(TARGETS udshttp_proto udshttp_service udshttp_client udshttp_boost_impl
        EXPORT udshttpTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS udshttpd udshttp RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY proto/include/ service/include/ client/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.hpp")
install(FILES ${PROJECT_BINARY_DIR}/proto/include/udshttp/proto/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/udshttp/proto)

set(UDSHTTP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/udshttp)
install(EXPORT udshttpTargets NAMESPACE udshttp:: DESTINATION ${UDSHTTP_CMAKE_DIR})
configure_package_config_file(cmake/udshttpConfig.cmake.in
    ${PROJECT_BINARY_DIR}/udshttpConfig.cmake INSTALL_DESTINATION ${UDSHTTP_CMAKE_DIR})
# 0.x: a minor version may break the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/udshttpConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/udshttpConfig.cmake
              ${PROJECT_BINARY_DIR}/udshttpConfigVersion.cmake
        DESTINATION ${UDSHTTP_CMAKE_DIR})

# The .pc file finds its prefix from where it lies, so it works wherever the tree is installed.
file(RELATIVE_PATH UDSHTTP_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" UDSHTTP_PC_TO_PREFIX "${UDSHTTP_PC_TO_PREFIX}")
configure_file(cmake/udshttp.pc.in ${PROJECT_BINARY_DIR}/udshttp.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/udshttp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The service unit names the binary where this install puts it (examples/ says /usr/bin, as
# the .deb does): rewritten at install time, so cmake --install --prefix and cpack agree.
install(FILES examples/systemd/udshttpd.socket DESTINATION lib/systemd/system)
install(CODE "
    file(READ \"${PROJECT_SOURCE_DIR}/examples/systemd/udshttpd.service\" unit)
    set(bin \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/udshttpd\")
    string(REPLACE \"/usr/bin/udshttpd\" \"\${bin}\" unit \"\${unit}\")
    set(dest \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/udshttpd.service\")
    message(STATUS \"Installing: \${dest}\")
    file(WRITE \"\${dest}\" \"\${unit}\")
")

set(CPACK_PACKAGE_NAME udshttp)
set(CPACK_PACKAGE_VENDOR "udshttp")
set(CPACK_PACKAGE_CONTACT "udshttp maintainers <udshttp@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # the libc, libstdc++ and libboost-url the binaries use
# Headers and static libraries need these to be used (find_package or pkg-config).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libboost1.81-dev, libboost-url1.81-dev, nlohmann-json3-dev")
include(CPack)
