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

# The group the socket unit names, for systemd-sysusers (the .deb's postinst runs it).
install(FILES packaging/udshttp.sysusers DESTINATION lib/sysusers.d RENAME udshttp.conf)

# Man pages and bash completion. Man pages and the changelog are installed gzipped (gzip -n:
# no timestamp, so two builds of one tree make the same package); Debian wants both, and copyright.
set(UDSHTTP_GZ_DIR ${PROJECT_BINARY_DIR}/gz)
set(UDSHTTP_GZ_FILES)
foreach(pair IN ITEMS "docs/man/udshttpd.8" "docs/man/udshttp.1" "packaging/deb/changelog")
    get_filename_component(name ${pair} NAME)
    add_custom_command(OUTPUT ${UDSHTTP_GZ_DIR}/${name}.gz
        COMMAND ${CMAKE_COMMAND} -E make_directory ${UDSHTTP_GZ_DIR}
        COMMAND sh -c "gzip -9 -n -c \"$1\" > \"$2\"" gzip ${PROJECT_SOURCE_DIR}/${pair}
                ${UDSHTTP_GZ_DIR}/${name}.gz
        DEPENDS ${PROJECT_SOURCE_DIR}/${pair} VERBATIM)
    list(APPEND UDSHTTP_GZ_FILES ${UDSHTTP_GZ_DIR}/${name}.gz)
endforeach()
add_custom_target(udshttp_docs ALL DEPENDS ${UDSHTTP_GZ_FILES})
install(FILES ${UDSHTTP_GZ_DIR}/udshttpd.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${UDSHTTP_GZ_DIR}/udshttp.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${UDSHTTP_GZ_DIR}/changelog.gz packaging/deb/copyright
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES packaging/bash-completion/udshttp packaging/bash-completion/udshttpd
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)

set(CPACK_PACKAGE_NAME udshttp)
set(CPACK_PACKAGE_VENDOR "udshttp")
# The maintainer the changelog names (tests/package_test.cpp checks the two agree).
set(CPACK_PACKAGE_CONTACT
    "udshttp maintainers <maintainers@users.noreply.h-seed-814692be.example>")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # the libc, libstdc++ and libboost-url the binaries use
# Headers and static libraries need these to be used (find_package or pkg-config).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libboost1.81-dev, libboost-url1.81-dev, nlohmann-json3-dev")
# postinst creates the udshttp group; dpkg wants maintainer scripts 0755 and owned by root.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/deb/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
