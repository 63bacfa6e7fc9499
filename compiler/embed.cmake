# Writes file IN as a NUL-terminated C string SYM (plus SYM_len) into OUT.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN} */\nconst char ${SYM}[] = {${body} 0};\nconst unsigned ${SYM}_len = ${len};\n")
