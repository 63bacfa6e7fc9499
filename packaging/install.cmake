# `cmake --install build --prefix P` and `cpack -G DEB` (from the build
# directory). simclrc and its runtime libraries are installed by
# compiler/ and runtime/, the manual pages by man/; the rest is here:
#
#   P/bin/simclrc, simclrc-fmnist2stl10 (the default dataset),
#         simclrc-plot-run (tools/plot-run.sh: a picture of a run)
#   P/lib/simclrc/libsc_*.a             linked into training binaries
#   P/include/simclrc/*.h               the ABI and the runtime's headers
#   P/share/simclrc/models/             shipped models and simclr.xsd
#   P/share/doc/simclrc/                README.md, examples/
#   P/share/man/man1/                   simclrc.1, simclrc-binary.1
#   P/share/bash-completion/completions simclrc, and the shipped models'
#                                       names for their training binaries

file(GLOB SC_MODEL_FILES ${PROJECT_SOURCE_DIR}/models/*.xml)
install(FILES ${SC_MODEL_FILES} ${PROJECT_SOURCE_DIR}/models/simclr.xsd
        DESTINATION ${SC_INSTALL_MODELS_DIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/simclrc
        FILES_MATCHING PATTERN "*.h")
install(PROGRAMS $<TARGET_FILE:fmnist2stl10> DESTINATION ${CMAKE_INSTALL_BINDIR}
        RENAME simclrc-fmnist2stl10)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(PROGRAMS ${PROJECT_SOURCE_DIR}/tools/plot-run.sh DESTINATION ${CMAKE_INSTALL_BINDIR}
        RENAME simclrc-plot-run)
install(PROGRAMS ${PROJECT_SOURCE_DIR}/examples/main-job.sh ${PROJECT_SOURCE_DIR}/examples/ablation.sh
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES ${PROJECT_SOURCE_DIR}/examples/common.sh DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# Bash completion: bash-completion loads completions/NAME when NAME is
# first completed, so the training binaries of the shipped models (named
# after them) get the same file under their names.
set(SC_COMPLETIONS_DIR ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${PROJECT_SOURCE_DIR}/tools/simclrc.bash-completion DESTINATION ${SC_COMPLETIONS_DIR}
        RENAME simclrc)
foreach(model ${SC_MODEL_FILES})
  get_filename_component(name ${model} NAME_WE)
  install(FILES ${PROJECT_SOURCE_DIR}/tools/simclrc.bash-completion DESTINATION ${SC_COMPLETIONS_DIR}
          RENAME ${name})
endforeach()

# The Debian package. Depends: the shared libraries of simclrc (found by
# dpkg-shlibdeps: LLVM 19, libxml2, OpenBLAS, libc), and what linking a
# training binary needs (compiler/link.c runs the C compiler driver on the
# runtime's static libraries with -lopenblas, so the driver, libc's
# development files and OpenBLAS's unversioned .so). Open MPI only for
# `simclrc --mpi`, so it is recommended.
set(CPACK_PACKAGE_NAME simclrc)
set(CPACK_PACKAGE_VENDOR "simclrc")
set(CPACK_PACKAGE_CONTACT "simclrc maintainers <simclrc@invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "ahead-of-time compiler for SimCLR contrastive training")
set(CPACK_PACKAGE_DESCRIPTION
    "simclrc turns a SimCLR model described in XML into a specialised training binary
(LLVM code generation, OpenBLAS kernels, optional data-parallel training over MPI).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "gcc, libc6-dev, libopenblas-dev")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libopenmpi-dev, openmpi-bin, man-db, bash-completion")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "dataset-fashion-mnist, gnuplot-nox")
include(CPack)
